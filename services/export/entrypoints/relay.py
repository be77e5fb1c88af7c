"""`python -m services.export.entrypoints.relay`: publishes the export outbox to the broker."""
from services.export.bootstrap import bootstrap
from shared.process import run_until_signalled


def main() -> None:
    run_until_signalled(bootstrap().relay().run_forever, name="export-relay")


if __name__ == "__main__":
    main()
