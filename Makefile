# Two commands: `make demo` (run the main job on the bundled sample) and `make test`.
# Each creates .venv with everything it needs when it is missing.
VENV    ?= .venv
PY      := $(VENV)/bin/python
RECODEC := $(VENV)/bin/recodec
STAMP   := $(VENV)/.installed
DEMO_OUT ?= demo-out

.PHONY: demo test venv clean bench train-gpu

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU build of torch must be installed first and pinned: a bare "torch" pulls a CUDA build.
	$(PY) -m pip install -q --no-compile torch==2.13.0
	$(PY) -m pip install -q --no-compile -c constraints.txt -e '.[test,s3,learned,plot]'
	# Bytecode on every core: pip compiles one file at a time (about 1.5 of its 4 min here; this, 1 min).
	# It must exist: where PYTHONDONTWRITEBYTECODE is set (CI) a module without it compiles in every process.
	# Exit status ignored, as pip does: some packages ship files for newer Pythons.
	$(PY) -m compileall -q -j 0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" > /dev/null || true
	touch $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO_OUT)
	$(RECODEC) run samples/archive $(DEMO_OUT) --config configs/demo.yaml
	$(RECODEC) reconcile $(DEMO_OUT)
	$(RECODEC) query $(DEMO_OUT) "SELECT source_key, codec, status, round(bpp, 3) AS bpp, round(psnr, 2) AS psnr, round(ssim, 4) AS ssim, source_bytes, dest_bytes FROM manifest ORDER BY source_key"

# Two workers, one test file each at a time (module fixtures build once): about a third of the
# suite's wall time is spent waiting on servers, actors and subprocesses, not computing.
TEST_WORKERS ?= 2

# Bytecode first: where PYTHONDONTWRITEBYTECODE is set (CI), every Ray actor and subprocess would
# otherwise compile recodec from source again (about 0.3 s of CPU per process).
test: $(STAMP)
	$(PY) -m compileall -q recodec tests benchmarks > /dev/null
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

bench: $(STAMP)
	$(PY) benchmarks/pipeline_overhead.py

# GPU burst (#14): continue training from the repo checkpoint for MINUTES (default 8), then the
# CPU-vs-CUDA exactness test and speed benchmarks; outputs under $$OUT (default out/train-gpu).
# No venv dependency: a GPU machine brings its own CUDA torch.
train-gpu:
	PY=$(if $(wildcard $(PY)),$(PY),python3) bash benchmarks/train_gpu.sh $(or $(MINUTES),8)

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
