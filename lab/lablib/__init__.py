"""kdumptool's QEMU VT-d + kdump lab (host side). Entry point: ``lab/run``."""
