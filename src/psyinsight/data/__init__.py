"""The release data: its format, labels, defects, repairs, statistics, splits and export."""
