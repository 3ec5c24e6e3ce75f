"""Stage 6, report: running and showing the pipeline. Figures, the notebook set-up helper, run
configs, the papermill runner that writes a run folder, and the command line.

May import: every stage.
"""
