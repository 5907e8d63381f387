"""LoRa Basics Station back end: CUPS server, LNS endpoints, station registry, admin API."""
