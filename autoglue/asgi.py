"""ASGI entry point: the supported web deployment is
`gunicorn autoglue.asgi --worker-class uvicorn_worker.UvicornWorker`.

Ordinary (synchronous) views run one at a time per worker process, as under gunicorn's sync
workers; live log streams (apps.jobs.stream) are async and wait without holding a thread, so
any number of viewers can stay attached.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autoglue.settings")

application = get_asgi_application()
