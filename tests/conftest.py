import sys
from pathlib import Path

# The vpbx package lives in kemi/ (where Kamailio loads it from).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kemi"))
# Test helpers shared by the tiers (fakes.py): `from fakes import RecordingNg`.
sys.path.insert(0, str(Path(__file__).resolve().parent))
