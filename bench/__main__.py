"""`python -m bench` (or `make bench`): runs every benchmark and rewrites BENCHMARKS.md."""
from bench import pipeline

if __name__ == "__main__":
    pipeline.main()
