"""``autopose study``: the paper's study (AutoPose tables 4 and 5) as a command.

Each row is searched (or not), its network trained from scratch with one training config
and tested, for several seeds; every stage is a fresh ``python -m autopose`` process. This
package is a driver above the commands: nothing below it (``data``, ``models``,
``search``, ``engine``, ``evaluation``) imports it.

Modules, one job each: ``rows`` (the rows, seeds, quick settings), ``options`` (the command
line and the resolved plan), ``commands`` (each stage's command and its portable form),
``processes`` (stage processes, killable), ``stages`` (what each stage runs and records),
``records`` (the markers in ``--out`` and their committed copy in ``--records``),
``resume`` (what a restarted study still runs), ``schedule`` (``--jobs``), ``cost`` (FLOPs
and the HRNet width match), ``stats`` (intervals and comparisons), ``report`` (the outputs)
and ``run`` (the command itself).
"""
