"""Glance's WSGI application for gunicorn (run by `.ci/real_services`, OS_GLANCE_CONFIG_DIR names the config).

The standalone `glance-api` script refuses to run; oslo.config must not see gunicorn's own arguments.
"""

import sys

sys.argv = sys.argv[:1]

from glance.wsgi.api import application  # noqa: E402,F401 (after sys.argv is cleaned)
