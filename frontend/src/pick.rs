//! The launch form's host picker (an inventory's groups and hosts, searched, chosen into the
//! limit) and its host count (what `ansible-playbook --list-hosts` says the launch will touch).

use serde_json::Value;
use shared::playbooks::{HostCount, InventoryFile};
use yew::prelude::*;

use crate::api::{self, Load};
use crate::ui::value_of;

/// Matches shown at once: a search narrows the rest (hundreds of hosts stay usable on a phone).
const SHOWN: usize = 40;

#[derive(Properties, PartialEq)]
pub struct PickerProps {
    /// The inventory file to pick from.
    pub inventory: String,
    /// The limit as it is now (comma-separated patterns).
    pub limit: String,
    pub on_limit: Callback<String>,
}

fn chosen_of(limit: &str) -> Vec<String> {
    limit.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

#[function_component(HostPicker)]
pub fn host_picker(props: &PickerProps) -> Html {
    let inv = use_state(|| Load::<InventoryFile>::Loading);
    let search = use_state(String::new);
    {
        // The hosts of the inventory chosen last (a slow answer for an earlier one is dropped).
        let (inv, latest) = (inv.clone(), use_mut_ref(String::new));
        use_effect_with(props.inventory.clone(), move |name| {
            inv.set(Load::Loading);
            *latest.borrow_mut() = name.clone();
            let name = name.clone();
            crate::ui::spawn(async move {
                let read = api::inventory_hosts(&name).await;
                if *latest.borrow() == name {
                    inv.set(Load::Loaded(read));
                }
            });
        });
    }
    let chosen = chosen_of(&props.limit);
    let toggle = |name: String| {
        let (on_limit, now) = (props.on_limit.clone(), chosen.clone());
        Callback::from(move |_: Event| {
            let mut now = now.clone();
            match now.iter().position(|c| *c == name) {
                Some(i) => drop(now.remove(i)),
                None => now.push(name.clone()),
            }
            on_limit.emit(now.join(","));
        })
    };
    let file = match &*inv {
        Load::Loading => return html! { <p class="hint">{ "Loading the inventory's hosts…" }</p> },
        Load::Loaded(Err(e)) => {
            return html! { <p class="hint error" data-testid="host-picker-error">{ e.words() }</p> }
        }
        Load::Loaded(Ok(f)) => f,
    };
    let needle = search.to_lowercase();
    let total = file.groups.iter().filter(|g| g.name != "ungrouped").count() + file.hosts.len();
    let groups =
        file.groups.iter().filter(|g| g.name != "ungrouped").map(|g| (g.name.clone(), Some(g.host_count)));
    let hosts = file.hosts.iter().map(|h| (h.clone(), None));
    let matches: Vec<(String, Option<usize>)> = groups
        .chain(hosts)
        .filter(|(n, _)| needle.is_empty() || n.to_lowercase().contains(&needle))
        .collect();
    let oninput = {
        let search = search.clone();
        Callback::from(move |e: InputEvent| search.set(value_of(&e.into())))
    };
    html! {
        <div class="picker" data-testid="host-picker">
            <input type="search" aria-label="Search the inventory's groups and hosts" placeholder="Search groups and hosts"
                   value={(*search).clone()} {oninput} data-testid="host-search" />
            <ul class="pick-list">
                { for matches.iter().take(SHOWN).map(|(name, count)| html! {
                    <li><label class="check">
                        <input type="checkbox" checked={chosen.contains(name)} onchange={toggle(name.clone())}
                               data-testid={format!("pick-{name}")} />
                        { format!(" {name}") }
                        if let Some(n) = count { <span class="muted">{ format!(" (group, {n})") }</span> }
                    </label></li>
                }) }
            </ul>
            <p class="hint" data-testid="host-picker-shown">{
                if matches.len() > SHOWN { format!("{SHOWN} of {} shown; search to narrow.", matches.len()) }
                else if matches.is_empty() { "Nothing matches.".to_string() }
                else { format!("{} of {} groups and hosts.", matches.len(), total) }
            }</p>
        </div>
    }
}

#[derive(Properties, PartialEq)]
pub struct CountProps {
    /// The body of `POST /api/v1/playbooks/hosts`.
    pub body: Value,
}

/// "This launch will run on N hosts", asked again a moment after the form stops changing.
#[function_component(HostCounter)]
pub fn host_counter(props: &CountProps) -> Html {
    let count = use_state(|| None::<Load<HostCount>>);
    let latest = use_mut_ref(|| Value::Null);
    {
        let (count, latest) = (count.clone(), latest.clone());
        use_effect_with(props.body.clone(), move |body| {
            *latest.borrow_mut() = body.clone();
            let body = body.clone();
            let timer = gloo_timers::callback::Timeout::new(500, move || {
                count.set(Some(Load::Loading));
                crate::ui::spawn(async move {
                    let answer = api::playbook_hosts(&body).await;
                    if *latest.borrow() == body {
                        count.set(Some(Load::Loaded(answer)));
                    }
                });
            });
            move || drop(timer)
        });
    }
    let text = match &*count {
        None | Some(Load::Loading) => "Counting the hosts…".to_string(),
        Some(Load::Loaded(Ok(c))) => {
            let listed = c.hosts.iter().take(10).cloned().collect::<Vec<_>>().join(", ");
            let more = if c.count > 10 { format!(" and {} more", c.count - 10) } else { String::new() };
            match c.count {
                0 => "This launch would run on no host: check the inventory and the limit.".to_string(),
                1 => format!("This launch will run on 1 host: {listed}."),
                n => format!("This launch will run on {n} hosts: {listed}{more}."),
            }
        }
        Some(Load::Loaded(Err(e))) => format!("The hosts cannot be counted: {}", e.words()),
    };
    html! { <p class="hint host-count" role="status" data-testid="launch-host-count">{ text }</p> }
}
