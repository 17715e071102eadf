"""Reading and writing files: BIDS datasets, NIfTI/CIFTI images, FSL formats."""
