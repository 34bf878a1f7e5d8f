"""The application above the method and its torchdistill glue: the ``zskd`` command line (:mod:`.cli`), the
training runner behind ``zskd train`` (:mod:`.runner`), the config checks that run before it (:mod:`.config_checks`),
the benchmark behind ``zskd benchmark`` (:mod:`.benchmark`) and the preparation of real data sets
(:mod:`.real_data`).

Imports run one way: ``zskd_plugin.app`` -> ``zskd_plugin.registry`` (torchdistill glue) -> the method modules of
``zskd_plugin``, which import no torchdistill.
"""
