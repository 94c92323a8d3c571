"""`volsync-hub`: the hub, and (without `--kubeconfig`) the whole embedded default under it.

    volsync-hub [--data-dir run] [--clusters cluster1,cluster2]          # the embedded default
    volsync-hub --kubeconfig FILE [--context C] --hub-url URL            # a real OCM hub

The composition root: it starts the embedded platform (`embedded.platform`: the API server and
the clusters' components) and hands it to the hub (`hub.main.run`) through the hub's
`EmbeddedPlatform` seam; with `--kubeconfig` it is `hub.main` unchanged.
"""

from __future__ import annotations

import sys

from embedded.platform import start_platform
from hub import main as hub_main


def main(argv: list[str] | None = None) -> int:
    args = hub_main.parse_args(argv)
    return hub_main.serve(args, lambda: start_platform(args))


if __name__ == "__main__":
    sys.exit(main())
