"""The data consumer daemon (`notip consumer`): JetStream `telemetry.data.>` →
TimescaleDB, gateway liveness, gw_offline alerts, status reports to management.

Start reading at `service.py`: it shows the whole nursery tree."""
