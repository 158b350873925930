"""Gunicorn's configuration file for the web role (`gunicorn -c autoglue/gunicorn_conf.py`, as the
image's command runs it). The worker class and timeouts are on the command line; the number of
workers is gunicorn's own `WEB_CONCURRENCY`. Process hooks (metrics, traces) belong here too."""

import os

# Every address of the container, on AUTOGLUE_PORT (8080 by default), which the image's health
# check also reads.
bind = [f"0.0.0.0:{os.environ.get('AUTOGLUE_PORT', '8080')}"]
