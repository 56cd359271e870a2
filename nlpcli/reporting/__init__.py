"""What a finished (or running) run's files say: its loss history as curves, `curves.png`, and the
side-by-side comparison of several runs that `nlpcli report` prints and draws."""
