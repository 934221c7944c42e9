"""Train (resuming) and export a generative decoder: thin wrapper over recodec.codecs.generative.training.

    nohup nice -n 19 env OMP_NUM_THREADS=1 python benchmarks/train_generative.py \\
        --model restore-jpeg /work/ckpt/generative/restore-jpeg --steps 4000 [--export]
    python benchmarks/train_generative.py --model gan-hyperprior OUT --export-only

SIGTERM checkpoints and stops; run the same command again to continue.  A GPU is used when
torch sees one (``pick_device``), else the CPU.
"""

from recodec.codecs.generative.training import main

if __name__ == "__main__":
    main()
