"""The life of an engagement attempt, owned by one object (``owner.Lifecycle``).

``transitions`` holds the states and the tables of what may follow what (pure data);
``owner`` is the only code that changes an attempt's state, through intent methods that the
edges (ingest, the REST and browser handlers, the launchers, the timers) call explicitly.
"""
