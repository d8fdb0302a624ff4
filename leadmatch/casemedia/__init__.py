"""Case media (issue 22): photos and clips added to a case, the unknown people who recur across them (persons),
and the disclosure export of a case.

    media.py    adding files to a case: stored by hash, every face found and embedded (clips: face tracks)
    persons.py  grouping faces into persons; merge, split, drop and undo; searching a person
    export.py   the case's disclosure export (HTML + JSON + files, each with its sha256) and its verification
"""
