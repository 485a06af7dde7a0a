# Stage 7: the paper's tables (Markdown, LaTeX, CSV), Fig. 3 and dev score vs bytes, from the per-cell records.


rule table:
    input:
        unpack(table_inputs),
    output:
        md=TABLE.format(name="{name}.md"),
        tex=TABLE.format(name="{name}.tex"),
        csv=TABLE.format(name="{name}.csv"),
        html=report(TABLE.format(name="{name}.html"), caption="../report/table.rst", category="Tables"),
    log:
        log_file("tables", "{name}"),
    wildcard_constraints:
        name="|".join(TABLES),
    params:
        layout=LAYOUT.to_dict(),
        description=lambda wildcards: TABLES[wildcards.name].description,
    run:
        from maskbench.results import tables

        logged_step(
            log,
            tables.write_table,
            wildcards.name,
            params.layout,
            output,
            **{kind: list(input[kind]) for kind in TABLES[wildcards.name].inputs},
        )


rule summary:
    input:
        choices=cell_files(CHOSEN),
        aggregates=cell_files(AGGREGATE),
        ensembles=cell_files(ENSEMBLE),
        evaluations=cell_files(EVALUATION),
    output:
        report(TABLE.format(name="summary.csv"), caption="../report/summary.rst", category="Tables"),
    log:
        log_file("tables", "summary"),
    params:
        layout=LAYOUT.to_dict(),
    run:
        from maskbench.results import tables

        logged_step(
            log,
            tables.write_table,
            "summary",
            params.layout,
            output,
            choices=input.choices,
            aggregates=input.aggregates,
            ensembles=input.ensembles,
            evaluations=input.evaluations,
        )


rule fig3_memory:
    input:
        aggregates=cell_files(AGGREGATE),
        references=reference_files(),
        serving=serving_files(),
    output:
        png=report(FIGURE.format(name="fig3_memory.png"), caption="../report/fig3.rst", category="Figures"),
        csv=FIGURE.format(name="fig3_memory.csv"),
    log:
        log_file("figures", "fig3_memory"),
    params:
        layout=LAYOUT.to_dict(),
    run:
        from maskbench.results import figures

        logged_step(
            log,
            figures.write_memory_figure,
            params.layout,
            output.png,
            output.csv,
            input.aggregates,
            input.references,
            input.serving,
        )


rule dev_vs_bytes:
    input:
        aggregates=cell_files(AGGREGATE),
        references=reference_files(),
    output:
        png=report(FIGURE.format(name="dev_vs_bytes.png"), caption="../report/dev_vs_bytes.rst", category="Figures"),
        csv=FIGURE.format(name="dev_vs_bytes.csv"),
    log:
        log_file("figures", "dev_vs_bytes"),
    params:
        layout=LAYOUT.to_dict(),
    run:
        from maskbench.results import figures

        logged_step(
            log,
            figures.write_dev_bytes_figure,
            params.layout,
            output.png,
            output.csv,
            input.aggregates,
            input.references,
        )
