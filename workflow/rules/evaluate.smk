# Stage 6: test scores of single models and of the ensemble chosen on dev (maskbench.results.evaluate); a task without a
# labelled test split records has_test: false.


rule evaluate:
    input:
        unpack(chosen_runs),
        ensemble=ENSEMBLE,
    output:
        EVALUATION,
    log:
        log_file("evaluate", "{model}/{task}/{method}"),
    run:
        from maskbench.results import evaluate

        logged_step(log, evaluate.write_evaluation, input.runs, input.ensemble, output[0])
