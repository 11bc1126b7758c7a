"""The dashboard and REST API over a workspace's last analysis (``rxradar serve``)."""
