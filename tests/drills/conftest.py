import pytest

from tests.drills.stand import Stand, redis_for_drills
from tests.product import scratch_environment


@pytest.fixture
def stand(tmp_path, receiver):
    with scratch_environment(tmp_path, redis=redis_for_drills()) as env:
        running = Stand.create(env, tmp_path, receiver)
        try:
            yield running
        finally:
            running.processes.stop_all()


def report(name: str, **figures) -> None:
    """One line per drill with its figures (pytest -s shows them; docs/reliability.md keeps them)."""
    print(f"\nDRILL {name}: " + ", ".join(f"{key}={value}" for key, value in figures.items()))
