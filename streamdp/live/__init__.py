"""Live anonymization: cameras and network streams in, RTSP / recording / preview out.

Modules, one concern each:

* ``sources``     inputs (network URL, file at native rate, camera through an injectable opener),
                  latest-frame policy, reconnect with backoff
* ``slot``        the one-slot latest-frame buffer
* ``backoff``     retry delays
* ``pipeline``    per-stream detect+track, ONE shared batched privatizer, deadlines, paced output
* ``covered``     ``CoveredFrame``: the only frames an output accepts (never a raw frame)
* ``sinks``       RTSP publisher (low-latency H.264, reconnects), recording file
* ``preview``     ``--show`` window
* ``serve`` / ``rtsp_server``  ``--serve PORT``: a small built-in RTSP server
* ``metrics``     latency p50/p95, fps in/out, drops; Prometheus endpoint
* ``redact``      credentials in URLs never reach logs, reports or metrics
* ``report``      the JSON report and summary
* ``cli``         ``streamdp live`` / ``streamdp relay``
"""
