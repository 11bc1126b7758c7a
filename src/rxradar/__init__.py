"""rxradar: open-source opioid surveillance over PDMP, death and registry data."""

__version__ = "0.1.0"
