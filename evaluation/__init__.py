"""Evaluation tools: Gaussian8 benchmarks, convergence of the correction loop, speed, noise estimates, crop tuning."""
