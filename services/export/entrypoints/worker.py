"""`python -m services.export.entrypoints.worker`: claims requested exports and builds them."""
from services.export.bootstrap import bootstrap
from shared.process import run_until_signalled


def main() -> None:
    run_until_signalled(bootstrap().worker().run, name="export-worker")


if __name__ == "__main__":
    main()
