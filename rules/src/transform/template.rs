//! Handlebars templates of transforms, bounded when they are compiled so that rendering
//! one can neither overflow the stack nor run for long.
//!
//! The Handlebars parser and renderer recurse once per nesting level, and partials can
//! call themselves; a stack overflow aborts the whole process, which no `catch_unwind`
//! can stop. So a template is compiled on a thread with a large stack (where even the
//! deepest template that fits in [`MAX_TEMPLATE_LEN`] parses safely), its tree is checked
//! there, and only a template that passes reaches the delivery path:
//!
//! - partials and decorators (`{{> p}}`, `{{#> p}}`, `{{#*inline}}`) are refused: they
//!   are how a template recurses, and repeated partial calls multiply work without bound;
//! - blocks, subexpressions and literals nest at most [`MAX_TEMPLATE_NESTING`] deep;
//! - the worst-case number of elements one render evaluates is at most
//!   [`MAX_TEMPLATE_COST`], counting every `each` block as iterating as often as the
//!   largest thing it could iterate (the variables, or the largest literal);
//! - the output is cut off at [`MAX_TEMPLATE_OUTPUT`]: the render fails past it.

use handlebars::template::{HelperTemplate, Parameter, Template as Tree, TemplateElement};
use handlebars::{Handlebars, JsonValue};
use serde_json::{Map, Value};

/// Longest template accepted, in bytes.
pub const MAX_TEMPLATE_LEN: usize = 16 * 1024;
/// Deepest nesting of blocks, subexpressions and literals.
pub const MAX_TEMPLATE_NESTING: usize = 32;
/// Most template elements one render may evaluate, in the worst case.
pub const MAX_TEMPLATE_COST: u64 = 100_000;
/// Largest output one render may produce, in bytes.
pub const MAX_TEMPLATE_OUTPUT: usize = 1024 * 1024;
/// Most variables a template may declare.
pub const MAX_TEMPLATE_VARS: usize = 64;

/// Stack of the thread that parses and checks templates. A template of
/// [`MAX_TEMPLATE_LEN`] bytes nests at most a few thousand levels; the parser needs a few
/// KiB per level in an unoptimised build. Only the pages touched are ever committed.
const PARSE_STACK: usize = 256 * 1024 * 1024;

/// The name the template is registered under; partials are refused, so no template can
/// refer to it.
const NAME: &str = "template";

/// A compiled, checked template.
#[derive(Debug)]
pub(super) struct Template {
    registry: Box<Handlebars<'static>>,
}

impl Template {
    /// Parses and checks `text`, for a template with `vars` variables.
    pub(super) fn compile(text: &str, vars: usize) -> Result<Template, String> {
        if text.len() > MAX_TEMPLATE_LEN {
            return Err(format!("is longer than {MAX_TEMPLATE_LEN} bytes"));
        }
        if vars > MAX_TEMPLATE_VARS {
            return Err(format!("declares more than {MAX_TEMPLATE_VARS} vars"));
        }
        let text = text.to_owned();
        // Whatever the parser builds is also dropped on this thread when refused: dropping
        // a deep tree recurses as deeply as building it.
        let compiled = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("template-parse".to_owned())
                .stack_size(PARSE_STACK)
                .spawn_scoped(scope, move || compile_checked(&text, vars))
                .map_err(|e| format!("could not be checked: {e}"))?
                .join()
                .map_err(|_| "could not be parsed".to_owned())?
        })?;
        Ok(Template {
            registry: Box::new(compiled),
        })
    }

    /// Renders the template over `data` (variable name → text).
    pub(super) fn render(&self, data: &Map<String, Value>) -> Result<String, String> {
        let mut out = Capped::default();
        match self.registry.render_to_write(NAME, data, &mut out) {
            Ok(()) => String::from_utf8(out.bytes).map_err(|e| e.to_string()),
            Err(_) if out.overflowed => {
                Err(format!("output is larger than {MAX_TEMPLATE_OUTPUT} bytes"))
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

fn compile_checked(text: &str, vars: usize) -> Result<Handlebars<'static>, String> {
    let mut registry = Handlebars::new();
    registry.register_escape_fn(json_escape);
    // It would write to the process log on every render.
    registry.unregister_helper("log");
    registry
        .register_template_string(NAME, text)
        .map_err(|e| format!("invalid Handlebars template: {e}"))?;
    let tree = registry
        .get_template(NAME)
        .ok_or_else(|| "could not be registered".to_owned())?;
    let mut check = Check {
        fanout: vars as u64,
    };
    check.literals(tree, 0)?;
    let cost = check.template(tree, 0)?;
    if cost > MAX_TEMPLATE_COST {
        return Err(too_costly());
    }
    Ok(registry)
}

fn too_costly() -> String {
    format!(
        "may evaluate more than {MAX_TEMPLATE_COST} elements per event (nested each blocks multiply)"
    )
}

fn too_deep() -> String {
    format!("nests blocks, subexpressions or literals deeper than {MAX_TEMPLATE_NESTING}")
}

/// Escapes text for the inside of a JSON string literal, so `"{\"text\": \"{{who}}\"}"`
/// stays valid JSON whatever `who` holds. `{{{who}}}` inserts the raw text instead.
fn json_escape(text: &str) -> String {
    let quoted = Value::String(text.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// The walk over a parsed template.
struct Check {
    /// How many times an `each` block may iterate: the variables are the only
    /// collection the data holds (each is a string), literals the only others.
    fanout: u64,
}

impl Check {
    /// Worst-case elements evaluated by one render of `tree` at nesting `depth`.
    fn template(&self, tree: &Tree, depth: usize) -> Result<u64, String> {
        let mut total: u64 = 0;
        for element in &tree.elements {
            total = total.saturating_add(self.element(element, depth)?);
            if total > MAX_TEMPLATE_COST {
                return Err(too_costly());
            }
        }
        Ok(total)
    }

    fn element(&self, element: &TemplateElement, depth: usize) -> Result<u64, String> {
        match element {
            TemplateElement::RawString(_) | TemplateElement::Comment(_) => Ok(1),
            TemplateElement::Expression(h)
            | TemplateElement::HtmlExpression(h)
            | TemplateElement::HelperBlock(h) => self.helper(h, depth),
            TemplateElement::DecoratorExpression(_)
            | TemplateElement::DecoratorBlock(_)
            | TemplateElement::PartialExpression(_)
            | TemplateElement::PartialBlock(_) => Err(
                "uses a partial or decorator ({{> …}}, {{#> …}}, {{#*inline …}}), which transform templates do not support"
                    .to_owned(),
            ),
            // A kind of element a newer Handlebars added: not known to be bounded.
            _ => Err("uses a Handlebars construct transform templates do not support".to_owned()),
        }
    }

    fn helper(&self, h: &HelperTemplate, depth: usize) -> Result<u64, String> {
        if depth >= MAX_TEMPLATE_NESTING {
            return Err(too_deep());
        }
        let mut cost: u64 = 1;
        for p in std::iter::once(&h.name)
            .chain(&h.params)
            .chain(h.hash.values())
        {
            if let Parameter::Subexpression(sub) = p {
                cost = cost.saturating_add(self.element(&sub.element, depth + 1)?);
            }
        }
        let body = match &h.template {
            Some(t) => self.template(t, depth + 1)?,
            None => 0,
        };
        let inverse = match &h.inverse {
            Some(t) => self.template(t, depth + 1)?,
            None => 0,
        };
        let each = h.block && matches!(&h.name, Parameter::Name(n) if n == "each");
        let repeats = if each { self.fanout.max(1) } else { 1 };
        Ok(cost
            .saturating_add(repeats.saturating_mul(body))
            .saturating_add(inverse))
    }

    /// Checks literal nesting and widens the fan-out to the largest literal collection.
    fn literals(&mut self, tree: &Tree, depth: usize) -> Result<(), String> {
        tree.elements
            .iter()
            .try_for_each(|e| self.element_literals(e, depth))
    }

    fn element_literals(&mut self, element: &TemplateElement, depth: usize) -> Result<(), String> {
        if depth >= MAX_TEMPLATE_NESTING {
            return Err(too_deep());
        }
        let h = match element {
            TemplateElement::Expression(h)
            | TemplateElement::HtmlExpression(h)
            | TemplateElement::HelperBlock(h) => h,
            TemplateElement::RawString(_)
            | TemplateElement::Comment(_)
            | TemplateElement::DecoratorExpression(_)
            | TemplateElement::DecoratorBlock(_)
            | TemplateElement::PartialExpression(_)
            | TemplateElement::PartialBlock(_) => return Ok(()),
            // Refused by the cost walk.
            _ => return Ok(()),
        };
        for p in std::iter::once(&h.name)
            .chain(&h.params)
            .chain(h.hash.values())
        {
            match p {
                Parameter::Literal(json) => self.literal(json, depth + 1)?,
                Parameter::Subexpression(sub) => self.element_literals(&sub.element, depth + 1)?,
                Parameter::Name(_) | Parameter::Path(_) => {}
                _ => {
                    return Err(
                        "uses a Handlebars parameter kind transform templates do not support"
                            .to_owned(),
                    );
                }
            }
        }
        for t in [&h.template, &h.inverse].into_iter().flatten() {
            self.literals(t, depth + 1)?;
        }
        Ok(())
    }

    fn literal(&mut self, json: &JsonValue, depth: usize) -> Result<(), String> {
        if depth >= MAX_TEMPLATE_NESTING {
            return Err(too_deep());
        }
        let children: Box<dyn Iterator<Item = &JsonValue>> = match json {
            JsonValue::Array(items) => Box::new(items.iter()),
            JsonValue::Object(map) => Box::new(map.values()),
            JsonValue::Null | JsonValue::Bool(_) | JsonValue::Number(_) | JsonValue::String(_) => {
                return Ok(());
            }
        };
        let mut n: u64 = 0;
        for child in children {
            n += 1;
            self.literal(child, depth + 1)?;
        }
        self.fanout = self.fanout.max(n);
        Ok(())
    }
}

/// A writer that keeps at most [`MAX_TEMPLATE_OUTPUT`] bytes and fails past them.
#[derive(Default)]
struct Capped {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_TEMPLATE_OUTPUT {
            self.overflowed = true;
            return Err(std::io::Error::other("template output too large"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(text: &str) -> Result<Template, String> {
        Template::compile(text, 3)
    }

    fn render(text: &str) -> Result<String, String> {
        let data: Map<String, Value> = [("a", "1"), ("b", "2"), ("c", "3")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::from(v)))
            .collect();
        compile(text)?.render(&data)
    }

    #[test]
    fn ordinary_templates_render() {
        assert_eq!(
            render("{{#if a}}{{a}}{{else}}none{{/if}}-{{#each this}}{{@key}}={{this}};{{/each}}"),
            Ok("1-a=1;b=2;c=3;".to_owned())
        );
        assert_eq!(
            render("{{#each [1, 2]}}{{this}}{{/each}}{{#with a}}{{this}}{{/with}}"),
            Ok("121".to_owned())
        );
        assert_eq!(
            render("{{#if (eq a \"1\")}}one{{/if}}"),
            Ok("one".to_owned())
        );
    }

    #[test]
    fn partials_and_decorators_are_refused() {
        let refused = "uses a partial or decorator ({{> …}}, {{#> …}}, {{#*inline …}}), which transform templates do not support";
        for text in [
            r#"{{#*inline "p"}}x{{> p}}{{/inline}}{{> p}}"#,
            r#"{{#*inline "a"}}{{> b}}{{/inline}}{{#*inline "b"}}{{> a}}{{/inline}}{{> a}}"#,
            "{{> template}}",
            "{{#> layout}}x{{/layout}}",
            "{{#if a}}{{> template}}{{/if}}",
        ] {
            assert_eq!(compile(text).map(|_| ()), Err(refused.to_owned()), "{text}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        // Each of these aborted the process before the checks existed.
        let ifs = format!("{}x{}", "{{#if 1}}".repeat(1000), "{{/if}}".repeat(1000));
        assert_eq!(compile(&ifs).map(|_| ()), Err(too_deep()));
        let subs = format!("{{{{a {}b{}}}}}", "(lookup ".repeat(1800), ")".repeat(1800));
        assert!(compile(&subs).is_err());
        let literal = format!("{{{{a {}1{}}}}}", "[".repeat(7000), "]".repeat(7000));
        assert!(compile(&literal).is_err());
        let nested = format!(
            "{}x{}",
            "{{#if 1}}".repeat(MAX_TEMPLATE_NESTING - 1),
            "{{/if}}".repeat(MAX_TEMPLATE_NESTING - 1)
        );
        assert_eq!(
            compile(&nested).and_then(|t| t.render(&Map::new())),
            Ok("x".to_owned())
        );
        let long = "x".repeat(MAX_TEMPLATE_LEN + 1);
        assert_eq!(
            compile(&long).map(|_| ()),
            Err("is longer than 16384 bytes".to_owned())
        );
    }

    #[test]
    fn multiplying_each_blocks_are_refused() {
        // 3 vars, but a 60-element literal widens what one each may iterate.
        let list = format!("[{}]", vec!["0"; 60].join(","));
        let text = format!(
            "{{{{#each {list}}}}}{{{{#each ../this}}}}{{{{#each ../this}}}}{{{{#each ../this}}}}x{{{{/each}}}}{{{{/each}}}}{{{{/each}}}}{{{{/each}}}}"
        );
        assert_eq!(compile(&text).map(|_| ()), Err(too_costly()));
        // Two levels over the three vars are fine.
        assert_eq!(
            render("{{#each this}}{{#each ../this}}.{{/each}}{{/each}}"),
            Ok(".........".to_owned())
        );
    }

    #[test]
    fn output_is_capped() {
        let data: Map<String, Value> = [("a".to_owned(), Value::from("x".repeat(300 * 1024)))]
            .into_iter()
            .collect();
        let t = Template::compile("{{a}}{{a}}{{a}}{{a}}", 1).unwrap();
        assert_eq!(
            t.render(&data),
            Err("output is larger than 1048576 bytes".to_owned())
        );
    }
}
