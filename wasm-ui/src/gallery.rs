//! Scenarios: the preset gallery, loading a scenario file (or pasting one), and the current
//! scenario's text.

use crate::run::ScenarioText;
use crate::state::use_explorer;
use crate::url::RunSpec;
use leptos::prelude::*;
use ringside_core::presets::PRESETS;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;

/// The first paragraph of a description.
fn summary(text: &str) -> String {
    let description =
        ringside_core::scenario::parse(text).map(|s| s.description).unwrap_or_default();
    description.split("\n\n").next().unwrap_or("").split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A modal dialog shown while `open` is set; a click outside it, or on ✕, closes it.
#[component]
pub fn Dialog(
    open: RwSignal<bool>,
    id: &'static str,
    title: &'static str,
    children: ChildrenFn,
) -> impl IntoView {
    let children = StoredValue::new(children);
    view! {
        <Show when=move || open.get()>
            <div class="overlay" on:click=move |_| open.set(false)>
                <div id=id class="dialog" on:click=|e| e.stop_propagation()>
                    <div class="panel-head">
                        <h2>{title}</h2>
                        <button class="close" on:click=move |_| open.set(false) aria-label="Close">"✕"</button>
                    </div>
                    {children.read_value()()}
                </div>
            </div>
        </Show>
    }
}

/// The gallery overlay.
#[component]
pub fn Gallery() -> impl IntoView {
    let ex = use_explorer();
    let (pasted, set_pasted) = signal(String::new());
    let (problem, set_problem) = signal(None::<String>);
    let load_text = move |text: String| match ex.load_text(text) {
        Ok(()) => {
            set_problem.set(None);
            ex.view.gallery.set(false);
        }
        Err(e) => set_problem.set(Some(e)),
    };
    let on_file = move |e: leptos::ev::Event| {
        let Some(input) = e.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        else {
            return;
        };
        let Some(file) = input.files().and_then(|f| f.get(0)) else { return };
        let Ok(reader) = web_sys::FileReader::new() else { return };
        let r = reader.clone();
        let onload = Closure::once_into_js(move || {
            let text = r.result().ok().and_then(|v| v.as_string()).unwrap_or_default();
            load_text(text);
        });
        reader.set_onload(Some(onload.unchecked_ref()));
        if reader.read_as_text(&file).is_err() {
            set_problem.set(Some(format!("could not read {}", file.name())));
        }
    };
    view! {
        <Dialog open=ex.view.gallery id="gallery" title="Scenarios">
                    <div class="cards">
                        {PRESETS.iter().map(|p| {
                            let id = p.id;
                            view! {
                                <button class="card" data-preset=id on:click=move |_| {
                                    ex.load(RunSpec::preset(id));
                                    ex.view.gallery.set(false);
                                }>
                                    <strong>{p.title}</strong>
                                    <span>{summary(p.text)}</span>
                                </button>
                            }
                        }).collect_view()}
                    </div>
                    <h3>"Build a situation"</h3>
                    <crate::builder::ScenarioBuilder/>
                    <h3>"Your own scenario"</h3>
                    <p class="hint small">
                        "A scenario file is TOML: a cluster, a workload, a timeline of events and expectations "
                        "(see tests/scenarios/ in the repository). It goes into the link, so a shared link replays it."
                    </p>
                    <div class="form-row">
                        <input id="scenario-file" type="file" accept=".toml,text/plain" on:change=on_file/>
                    </div>
                    <textarea id="scenario-text" rows="8" placeholder="…or paste a scenario here"
                        prop:value=pasted on:input=move |e| set_pasted.set(event_target_value(&e))></textarea>
                    <div class="form-row">
                        <button id="scenario-run" on:click=move |_| load_text(pasted.get_untracked())>"Run this scenario"</button>
                    </div>
                    {move || problem.get().map(|p| view! { <p id="scenario-error" class="error">{p}</p> })}
        </Dialog>
    }
}

/// The scenario played: title, description and text.
#[component]
pub fn ScenarioInfo(#[prop(into)] scenario: Signal<Option<ScenarioText>>) -> impl IntoView {
    view! {
        <section id="scenario" class="panel scenario-info">
            {move || scenario.get().map(|ScenarioText { title, description, text, custom }| {
                view! {
                    <h2>{title}{custom.then_some(" (your file)")}</h2>
                    <div class="description">
                        {description
                            .split("\n\n")
                            .map(|para| view! { <p>{para.split_whitespace().collect::<Vec<_>>().join(" ")}</p> })
                            .collect_view()}
                    </div>
                    <details>
                        <summary>"Scenario file"</summary>
                        <pre class="scenario-text">{text}</pre>
                    </details>
                }
            })}
        </section>
    }
}
