"""Gunicorn settings; every value can be overridden with the matching environment variable."""

import multiprocessing
import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_WORKERS", max(2, multiprocessing.cpu_count())))
# Each live-session WebSocket or event stream holds one thread while it is open (gthread worker,
# pathology_hub/web/live.py), so a worker needs enough threads to keep serving tiles beside them.
threads = int(os.environ.get("WEB_THREADS", "32"))
worker_class = "gthread"
if workers > 1 and not (os.environ.get("LIVE_REDIS_URL") or os.environ.get("RATELIMIT_STORAGE_URI", "").startswith("redis")):
    import sys
    print("warning: live sessions need LIVE_REDIS_URL when WEB_WORKERS > 1 (participants on different "
          "workers would not see each other)", file=sys.stderr)
# Uploads of big chunks over weak networks can take a while per request.
timeout = int(os.environ.get("WEB_TIMEOUT", "300"))
graceful_timeout = 30
keepalive = 5
accesslog = os.environ.get("ACCESS_LOG", "-")
access_log_format = '{"remote":"%(h)s","method":"%(m)s","path":"%(U)s","status":%(s)s,"bytes":"%(B)s","ms":%(M)s}'
errorlog = "-"
# One access line per request, except successful tile reads (see pathology_hub/web/access_log.py).
logger_class = "pathology_hub.web.access_log.HubAccessLogger"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
