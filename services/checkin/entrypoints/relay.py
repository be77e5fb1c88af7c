"""`python -m services.checkin.entrypoints.relay`: publishes the check-in outbox to the broker."""
from services.checkin.bootstrap import bootstrap
from shared.process import run_until_signalled


def main() -> None:
    run_until_signalled(bootstrap().relay().run_forever, name="checkin-relay")


if __name__ == "__main__":
    main()
