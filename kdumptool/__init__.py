"""kdumptool: triage Linux kdump on machines with an Intel VT-d IOMMU."""

__version__ = "0.1.0"
