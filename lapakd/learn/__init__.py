"""Learning from the desk's own decisions: a small text classifier over the admins' labels and
the rules' `examples:`.

`features` turns a text into the features both sides use; `labels` collects the labelled texts
(store events + shipped examples); `train` fits scikit-learn's model in a process of its own and
exports its weights; `predict` reads those weights in numpy (the daemon never imports
scikit-learn); `consult` adds the model's say to a rules Decision; `job` trains on schedule.
"""
