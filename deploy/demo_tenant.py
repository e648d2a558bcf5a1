"""Create the demo tenant through the gateway's admin API and print its admin key.

Used by compose.yaml's one-shot ``demo`` service (standard library only):
``python demo_tenant.py`` with FLOWMESH_URL (default http://gateway:8080),
FLOWMESH_ADMIN_TOKEN and FLOWMESH_DEMO_TENANT (default ``demo``). A tenant that exists
already is left as it is (its key was printed when it was made): exit 0 either way.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request


def main() -> int:
    url = os.environ.get("FLOWMESH_URL", "http://gateway:8080").rstrip("/")
    token = os.environ.get("FLOWMESH_ADMIN_TOKEN", "")
    tenant = os.environ.get("FLOWMESH_DEMO_TENANT", "demo")
    if not token:
        print("FLOWMESH_ADMIN_TOKEN is not set", file=sys.stderr)
        return 2
    body = json.dumps({"id": tenant, "name": "Demo"}).encode()
    request = urllib.request.Request(  # noqa: S310 - the URL is the operator's own
        f"{url}/api/v1/admin/tenants",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    for attempt in range(30):
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                created = json.load(answer)
        except urllib.error.HTTPError as exc:
            if exc.code == 409:
                print(f"tenant {tenant!r} exists; its admin key was printed when it was made")
                return 0
            if exc.code < 500:
                print(f"{exc.code}: {exc.read().decode(errors='replace')}", file=sys.stderr)
                return 1
        except OSError:
            pass
        else:
            print(f"tenant {tenant!r} created; admin key: {created['admin_key']['key']}")
            return 0
        time.sleep(min(2.0, 0.2 * (attempt + 1)))
    print(f"the gateway at {url} did not answer", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
