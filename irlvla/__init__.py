"""Command-line entry point of the IRL-VLA project (`irlvla`)."""
