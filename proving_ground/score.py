def score(case_dir, answer):
    raise NotImplementedError
