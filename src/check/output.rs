//! The output: the loss, the score activation (its default follows the loss) and which of them go together.

use super::args::{self, read_real, Range};
use super::{Activation, Checker, Loss};
use crate::diagnostic::{Code, Diagnostic, Span};
use crate::syntax::ast::Value;

const ACTIVATIONS: &[&str] = &["tanh", "linear", "elu", "softmax"];
const LOSSES: &[&str] = &["top1", "bpr", "top1_max", "bpr_max", "cross_entropy"];

impl Checker<'_> {
    pub(super) fn loss(&mut self, value: Option<&Value>) -> Loss {
        let Some(value) = value else { return Loss::Top1 };
        let Some((kind, args)) = self.function(value, "loss", LOSSES, |kind| match kind {
            "bpr_max" => (&["bpreg"][..], 0),
            "cross_entropy" => (&["logq"][..], 0),
            _ => (&[][..], 0),
        }) else {
            return Loss::Top1;
        };
        match kind {
            "top1" => Loss::Top1,
            "bpr" => Loss::Bpr,
            "top1_max" => Loss::Top1Max,
            "bpr_max" => Loss::BprMax { bpreg: args.real("bpreg", 1.0, Range::NonNegative, self.sink) },
            _ => Loss::CrossEntropy { logq: args.real("logq", 0.0, Range::NonNegative, self.sink) },
        }
    }

    /// `output = scores(activation = ...)`; the default activation follows the loss.
    pub(super) fn output(&mut self, value: Option<&Value>, loss: Loss) -> Activation {
        let default = match loss {
            Loss::CrossEntropy { .. } => Activation::Softmax,
            Loss::BprMax { .. } => Activation::Elu { alpha: 1.0 },
            _ => Activation::Tanh,
        };
        let Some(value) = value else { return default };
        let Some((_, args)) = self.function(value, "output", &["scores"], |_| (&["activation"][..], 0)) else {
            return default;
        };
        let Some(activation_value) = args.get("activation") else { return default };
        let Some((kind, activation_args)) = self.function(activation_value, "activation", ACTIVATIONS, |kind| match kind {
            "elu" => (&["alpha"][..], 1),
            _ => (&[][..], 0),
        }) else {
            return default;
        };
        let activation = match kind {
            "tanh" => Activation::Tanh,
            "linear" => Activation::Linear,
            "softmax" => Activation::Softmax,
            _ => {
                let alpha = match activation_args.positional.first() {
                    Some(value) => read_real(value, "alpha", Range::Positive, self.sink).unwrap_or(1.0),
                    None => activation_args.real("alpha", 1.0, Range::Positive, self.sink),
                };
                Activation::Elu { alpha }
            }
        };
        self.loss_activation(loss, activation, activation_value.span);
        activation
    }

    fn loss_activation(&mut self, loss: Loss, activation: Activation, span: Span) {
        let problem = match (loss, activation) {
            (Loss::CrossEntropy { .. }, Activation::Tanh | Activation::Elu { .. }) => Some((
                "cross_entropy takes raw logits: a squashing activation before its softmax distorts them",
                "use `activation = softmax` (the softmax lives inside the loss) or `linear`",
            )),
            (Loss::CrossEntropy { .. }, _) => None,
            (_, Activation::Softmax) => Some((
                "pairwise losses compare raw scores; a softmax over the sampled items would be applied twice for \
                 top1_max and bpr_max, and squashes top1 and bpr",
                "use `tanh` (the paper's choice) or `linear`; `elu(1)` is GRU4Rec's choice for bpr_max",
            )),
            _ => None,
        };
        if let Some((why, fix)) = problem {
            let d = Diagnostic::error(
                Code::LossActivation,
                format!("`{}` does not go with the {} loss", activation_name(activation), loss_name(loss)),
            )
            .at(span, "this activation")
            .note(why)
            .help(fix);
            self.push(d);
        }
    }
}

pub fn activation_name(activation: Activation) -> String {
    match activation {
        Activation::Tanh => "tanh".into(),
        Activation::Linear => "linear".into(),
        Activation::Softmax => "softmax".into(),
        Activation::Elu { alpha } => format!("elu(alpha = {})", args::format_number(alpha)),
    }
}

pub fn loss_name(loss: Loss) -> String {
    match loss {
        Loss::Top1 => "top1".into(),
        Loss::Bpr => "bpr".into(),
        Loss::Top1Max => "top1_max".into(),
        Loss::BprMax { bpreg } => format!("bpr_max(bpreg = {})", args::format_number(bpreg)),
        Loss::CrossEntropy { logq } => format!("cross_entropy(logq = {})", args::format_number(logq)),
    }
}
