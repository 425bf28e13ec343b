"""What talks to the machine: NVIDIA GPUs through NVML (gpu, telemetry), the Docker engine (containers),
Slurm (slurm), prepared data with stamps and locks (datasets), and the harness code's commit (git)."""
