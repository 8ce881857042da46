"""Scale-out on Ray: ``streamdp batch`` over an archive of files (``batch.py``) and camera fleets
for ``streamdp relay --ray`` (``fleet.py``).

Ray is an optional extra (``pip install 'streamdp[scale]'``) and is imported only inside these
commands' handlers: ``import streamdp`` or ``streamdp run`` never loads it.
"""
