"""The skim engine: TAG databases and the selection language
(:mod:`skimengine.tags`, :mod:`skimengine.selection`), event collections
(:mod:`skimengine.collection`), the file store, extraction and its executors
(:mod:`skimengine.filestore`, :mod:`skimengine.extract`,
:mod:`skimengine.executors`).

It uses :mod:`catalog` and nothing else of hepcat; the task server and the
command line wire it in.
"""
