"""Container healthcheck for the serving image: exit 0 when the app script runs, 1 otherwise.

Streamlit's /_stcore/health returns 200 as long as the server is up.
/_stcore/script-health-check (enabled by server.scriptHealthCheckEnabled)
runs the app script and fails when it raises, so a broken app turns the
container unhealthy rather than staying "healthy" with a traceback on the page.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

from lockstep.settings import ServeSettings, SettingsError


def main() -> int:
    # The app shows a bad setting on its page and stops there. The script health
    # check counts that as a success, so check the settings here: the container
    # then turns unhealthy, and `docker compose ps` shows the problem.
    try:
        ServeSettings.from_env()
    except SettingsError as error:
        print(f"unhealthy: invalid setting:\n{error}")
        return 1
    port = os.environ.get("STREAMLIT_SERVER_PORT", "8501")
    url = f"http://127.0.0.1:{port}/_stcore/script-health-check"
    try:
        with urllib.request.urlopen(url, timeout=25) as response:
            body = response.read(500).decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        print(f"unhealthy: {url} returned {error.code}: {error.read(500).decode('utf-8', 'replace')}")
        return 1
    except (OSError, urllib.error.URLError) as error:
        print(f"unhealthy: {url} unreachable: {error}")
        return 1
    print(f"healthy: {body}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
