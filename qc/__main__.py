"""``python -m qc evaluate ...``: the QC command group without the rest of the LIS."""

from qc.cli import qc

if __name__ == "__main__":
    qc(prog_name="qc")
