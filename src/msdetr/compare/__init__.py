"""`msdetr compare`: train several variants (`BASE+METHOD...`) under the same budget and seeds, and
report them side by side. `plan` builds the runs, `worker` trains one run in its own process,
`runner` schedules them (reusing finished ones), `report` and `plots` write the results."""
