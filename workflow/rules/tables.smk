# Stage 7: the paper's tables (Markdown, LaTeX, CSV), Fig. 3 and dev score vs bytes, from the per-cell records.


def analysis_data_files():
    """The analyses' data files a table may read, by kind (maskbench.results.tables.ANALYSIS_KINDS): none for an
    analysis the configuration does not run."""
    return {
        "memory": [FIGURE.format(name="fig3_memory.csv")],
        "sparsity": [FIGURE.format(name="fig1_sparsity.csv")] if "sparsity" in ANALYSES else [],
        "generalization": generalization_files() if "generalization" in ANALYSES else [],
    }


def table_inputs(wildcards):
    """The files a registered table reads, by kind (maskbench.results.tables.RECORD_KINDS and ANALYSIS_KINDS)."""
    files = {"choices": CHOSEN, "aggregates": AGGREGATE, "ensembles": ENSEMBLE, "evaluations": EVALUATION}
    files = {kind: cell_files(pattern) for kind, pattern in files.items()}
    files.update(references=reference_files(), serving=serving_files(), **analysis_data_files())
    return {kind: files[kind] for kind in TABLES[wildcards.name].inputs}


# every table of maskbench.results.tables.TABLES (table1_dev, table2_test, ..., paper_comparison): what it reads, how it is
# built and its report caption come from its TableSpec (CONTRIBUTING.md: "Add a table")
rule table:
    input:
        unpack(table_inputs),
    output:
        md=TABLE.format(name="{name}.md"),
        tex=TABLE.format(name="{name}.tex"),
        csv=TABLE.format(name="{name}.csv"),
        html=report(TABLE.format(name="{name}.html"), caption="../report/table.rst", category="Tables"),
    wildcard_constraints:
        name="|".join(TABLES),
    params:
        layout=LAYOUT.to_dict(),
        description=lambda wildcards: TABLES[wildcards.name].description,
    run:
        from maskbench.results import tables

        tables.write_table(
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
    params:
        layout=LAYOUT.to_dict(),
    run:
        from maskbench.results import tables

        tables.write_table(
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
    params:
        layout=LAYOUT.to_dict(),
    run:
        from maskbench.results import figures

        figures.write_memory_figure(
            params.layout, output.png, output.csv, input.aggregates, input.references, input.serving
        )


rule dev_vs_bytes:
    input:
        aggregates=cell_files(AGGREGATE),
        references=reference_files(),
    output:
        png=report(FIGURE.format(name="dev_vs_bytes.png"), caption="../report/dev_vs_bytes.rst", category="Figures"),
        csv=FIGURE.format(name="dev_vs_bytes.csv"),
    params:
        layout=LAYOUT.to_dict(),
    run:
        from maskbench.results import figures

        figures.write_dev_bytes_figure(params.layout, output.png, output.csv, input.aggregates, input.references)
