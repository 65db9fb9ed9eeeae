"""Built-in fusion methods. Each module holds one method; BUILTINS maps config names to classes.

``common`` holds what several methods share (checked task vectors, the weight-matrix rule,
SVD helpers); it registers nothing.
"""

BUILTINS: dict[str, str] = {
    "simple_average": "fusionbench.methods.simple_average:SimpleAverage",
    "task_arithmetic": "fusionbench.methods.task_arithmetic:TaskArithmetic",
    "ties": "fusionbench.methods.ties:Ties",
    "dare": "fusionbench.methods.dare:Dare",
    "lorahub": "fusionbench.methods.lorahub:LoraHub",
    "awd": "fusionbench.methods.awd:Awd",
    "cart": "fusionbench.methods.cart:Cart",
    "tsv": "fusionbench.methods.tsv:Tsv",
    "iso_c": "fusionbench.methods.iso_c:IsoC",
    "iso_cts": "fusionbench.methods.iso_cts:IsoCts",
    "fisher": "fusionbench.methods.fisher:FisherMerging",
    "regmean": "fusionbench.methods.regmean:RegMean",
    "regmean_plusplus": "fusionbench.methods.regmean_plusplus:RegMeanPlusPlus",
    "adamerging": "fusionbench.methods.adamerging:AdaMerging",
    "wudi": "fusionbench.methods.wudi:Wudi",
    "knots": "fusionbench.methods.knots:Knots",
    "consensus": "fusionbench.methods.consensus:Consensus",
    "pcb": "fusionbench.methods.pcb:Pcb",
    "breadcrumbs": "fusionbench.methods.breadcrumbs:Breadcrumbs",
}
