import os

import pytest

from tests.browser.chromium import chromium_installed, chromium_start


@pytest.fixture
def browser():
    """Debian's headless chromium driven by selenium; a failure under CI=true when it is missing."""
    if not chromium_installed():
        if os.environ.get("CI") == "true":
            pytest.fail("chromium and chromium-driver must be installed under CI=true (.ci/run installs them)")
        pytest.skip("chromium / chromedriver not installed (apt-get install chromium chromium-driver)")
    driver = chromium_start()
    yield driver
    driver.quit()
