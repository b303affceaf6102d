"""The project's settings, with a test database the live-server test can share (a file)."""

import os
import tempfile

from mysite.settings import *  # noqa: F403
from mysite.settings import DATABASES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

DATABASES["default"]["OPTIONS"] = {"timeout": 20}
DATABASES["default"]["TEST"] = {
    "NAME": os.path.join(tempfile.gettempdir(), f"host-project-test-{os.getpid()}.sqlite3"),
}
# A daphne started by tests/live.py serves the test database of the test process.
if os.environ.get("HOST_PROJECT_SERVER_DB"):
    DATABASES["default"]["NAME"] = os.environ["HOST_PROJECT_SERVER_DB"]
