"""``python -m firmware.sensor_node.host``: a simulated sensor node (see ``run.py``)."""

from firmware.sensor_node.host.run import main

raise SystemExit(main())
