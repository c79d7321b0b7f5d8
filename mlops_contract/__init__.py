"""The contract between the pipeline and the prediction server, which both import and which
imports neither: the record contract of a model's inputs (`record`, compiled to validators in
`validation`), the bundle format and its staging rule (`bundle`), where bundles are kept
(`location`) and the published drift document (`drift`). Standard library only, except joblib
to read a bundle's model."""
