//! Binding a config to a checked model: every spec input gets a source of its kind, and `feature` inputs
//! become dense or sparse.

use super::schema::RunConfig;
use super::span;
use crate::check::{InputKind, Model};
use crate::diagnostic::{Code, Diagnostic};

/// Checks the config's inputs against a checked model and decides the kind of every `feature` input.
/// Returns the model with `feature` inputs resolved to dense or sparse.
pub fn bind(config: &RunConfig, model: &Model, spec_name: &str) -> Result<Model, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut bound = model.clone();
    for input in &mut bound.inputs {
        let binding = config.inputs.iter().find(|(name, _)| name.get_ref() == &input.name);
        let declared = match &input.kind {
            InputKind::ItemId { .. } => "item_id",
            InputKind::Dense => "dense",
            InputKind::Sparse => "sparse",
            InputKind::Feature => "feature",
        };
        match binding {
            None if declared == "item_id" => {}
            None => {
                let source_help = match declared {
                    "dense" => format!("add `[inputs.{}]` with `kind = \"dense\"` and `vectors = \"...npy\"`", input.name),
                    "sparse" => format!(
                        "add `[inputs.{}]` with `kind = \"sparse\"`, `items = \"...tsv\"`, `columns = [...]` and `encoding`",
                        input.name
                    ),
                    _ => format!("add `[inputs.{}]` with `kind = \"dense\"` (vectors) or `kind = \"sparse\"` (item columns)", input.name),
                };
                errors.push(
                    Diagnostic::error(Code::ConfigBinding, format!("spec input `{}` has no source", input.name))
                        .note(format!("`{}` is declared `{declared}` in {spec_name}", input.name))
                        .help(source_help),
                );
            }
            Some((_, binding)) => {
                let given = binding.get_ref().kind_name();
                let fits = declared == given || (declared == "feature" && given != "item_id");
                if !fits {
                    errors.push(
                        Diagnostic::error(
                            Code::ConfigBinding,
                            format!("input `{}` is `{declared}` in the spec but bound as `{given}`", input.name),
                        )
                        .at(span(binding.span()), format!("a `{given}` source"))
                        .note(format!("declared in {spec_name}"))
                        .help(if declared == "feature" {
                            "a `feature` input takes a `dense` or `sparse` source".to_string()
                        } else {
                            format!("give `kind = \"{declared}\"` with its source, or change the spec")
                        }),
                    );
                } else if declared == "feature" {
                    input.kind = if given == "dense" { InputKind::Dense } else { InputKind::Sparse };
                }
            }
        }
    }
    // A config describes a dataset, and one dataset serves many specs: a table for an input the spec does not
    // declare is fine (an ID-only baseline on a dataset with features), unless the spec has an input that
    // is left without a source, when the table is most likely that input misspelt.
    let unbound_feature = model.inputs.iter().any(|input| {
        !matches!(input.kind, InputKind::ItemId { .. }) && !config.inputs.iter().any(|(name, _)| name.get_ref() == &input.name)
    });
    for (name, binding) in &config.inputs {
        if unbound_feature && model.input(name.get_ref()).is_none() {
            errors.push(
                Diagnostic::error(Code::ConfigBinding, format!("`[inputs.{}]` binds no input of the spec", name.get_ref()))
                    .at(span(binding.span()), "not declared in the spec")
                    .note(format!(
                        "{spec_name} declares {}",
                        model.inputs.iter().map(|i| format!("`{}`", i.name)).collect::<Vec<_>>().join(", ")
                    ))
                    .suggest(name.get_ref(), model.inputs.iter().map(|i| i.name.as_str())),
            );
        }
    }
    if errors.is_empty() {
        Ok(bound)
    } else {
        Err(errors.into_iter().map(|diagnostic| config.included.locate(diagnostic)).collect())
    }
}
