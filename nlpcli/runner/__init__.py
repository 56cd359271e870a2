"""The shared runner: one orchestration (`run.py`) and two interchangeable loops (Trainer, Accelerate)."""
