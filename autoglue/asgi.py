"""ASGI entry point: the supported web deployment is
`gunicorn autoglue.asgi --worker-class autoglue.workers.UvicornWorker`.

Ordinary (synchronous) views run on a thread of their own per request; live log streams
(apps.jobs.stream) are async and wait without holding a thread or a connection (up to the caps
on open streams). Database connections are closed after each request (CONN_MAX_AGE 0, Django's
advice for ASGI).
"""

import os

from django.core.asgi import get_asgi_application

from autoglue.tracing import setup as tracing_setup
from autoglue.tracing import wrap_asgi

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autoglue.settings")

# Gunicorn's post_fork hook has set tracing up already (autoglue/gunicorn_conf.py); this covers a
# server started without that config file. Before Django builds its middleware chain either way.
tracing_setup("web")
application = wrap_asgi(get_asgi_application())
