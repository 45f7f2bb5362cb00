//! The `/v2` handlers: authentication, employer visibility, paging envelopes and filters.
//!
//! Status codes per `sources.md` 1.8: 401 without a valid bearer token, 403 for an employer
//! the authorizing user may not see (or a BSN the user may not read), 404 for an unknown id
//! (a malformed UUID included), 400 for bad paging or a filter the simulator does not know.
//! Error bodies are `{"message": "..."}`; Loket's own format is undocumented.
//!
//! `filter` and `orderBy` are implemented only where koppel needs them, on the two
//! `lastmodifiedversionnumbers` endpoints (`lastModifiedVersionNumber` or `version`, with
//! `gt ge lt le eq ne`). Elsewhere they are refused with 400, so a client relying on a filter
//! the simulator would silently ignore fails loudly instead. Lists come in a stable order:
//! creation order, which is also the order of ids in the world.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::render;
use super::{AuthorizingUser, LoketSimulator, LoketSimulatorConfig};
use crate::world::{Employer, Employment, EntityLocation, World};

/// Why an API request was refused.
#[derive(Debug)]
pub(super) enum ApiError {
    Unauthorized,
    Forbidden(&'static str),
    NotFound(&'static str),
    BadRequest(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Unauthorized => {
                let mut response = (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({ "message": "Authorization has been denied for this request." })),
                )
                    .into_response();
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
                response
            }
            ApiError::Forbidden(what) => (
                StatusCode::FORBIDDEN,
                Json(json!({ "message": format!("No access to this {what}.") })),
            )
                .into_response(),
            ApiError::NotFound(what) => (
                StatusCode::NOT_FOUND,
                Json(json!({ "message": format!("The {what} was not found.") })),
            )
                .into_response(),
            ApiError::BadRequest(message) => {
                (StatusCode::BAD_REQUEST, Json(json!({ "message": message }))).into_response()
            }
        }
    }
}

type ApiResult = Result<Response, ApiError>;

/// Query parameters shared by list endpoints; kept as text so a bad value gets a clear 400.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    #[serde(rename = "pageNumber")]
    page_number: Option<String>,
    #[serde(rename = "pageSize")]
    page_size: Option<String>,
    filter: Option<String>,
    #[serde(rename = "orderBy")]
    order_by: Option<String>,
}

/// A validated page request.
#[derive(Debug, Clone, Copy)]
struct Paging {
    /// 1-based.
    page_number: usize,
    page_size: usize,
}

fn paging(query: &ListQuery, config: &LoketSimulatorConfig) -> Result<Paging, ApiError> {
    let page_number = parse_positive(query.page_number.as_deref(), 1, "pageNumber")?;
    let default_size = usize::try_from(config.default_page_size).unwrap_or(100);
    let max_size = usize::try_from(config.max_page_size)
        .unwrap_or(usize::MAX)
        .max(1);
    let page_size =
        parse_positive(query.page_size.as_deref(), default_size, "pageSize")?.min(max_size);
    Ok(Paging {
        page_number,
        page_size,
    })
}

fn parse_positive(value: Option<&str>, default: usize, name: &str) -> Result<usize, ApiError> {
    match value {
        None => Ok(default.max(1)),
        Some(text) => match text.trim().parse::<usize>() {
            Ok(number) if number >= 1 => Ok(number),
            _ => Err(ApiError::BadRequest(format!(
                "{name} must be a positive integer."
            ))),
        },
    }
}

fn reject_filter_and_order(query: &ListQuery) -> Result<(), ApiError> {
    if query.filter.is_some() || query.order_by.is_some() {
        return Err(ApiError::BadRequest(
            "filter and orderBy are not supported on this endpoint by the simulator.".to_owned(),
        ));
    }
    Ok(())
}

/// The collection envelope: `_embedded`, `currentPage`, `pageSize`, `totalPages`, `totalSize`.
/// An empty collection has `totalPages: 0` and `currentPage` as requested; a page past the end
/// is an empty `_embedded` with the real totals. (Both undocumented: pitfall P3.)
fn collection<T>(items: &[T], paging: Paging, render: impl Fn(&T) -> Value) -> Response {
    let start = (paging.page_number - 1).saturating_mul(paging.page_size);
    let embedded: Vec<Value> = items
        .iter()
        .skip(start)
        .take(paging.page_size)
        .map(render)
        .collect();
    Json(json!({
        "_embedded": embedded,
        "currentPage": paging.page_number,
        "pageSize": paging.page_size,
        "totalPages": items.len().div_ceil(paging.page_size),
        "totalSize": items.len(),
    }))
    .into_response()
}

/// The single-item envelope `{"content": ...}` with an `ETag` of the entity's version.
fn single(content: Value, version: Option<u64>) -> Response {
    let mut response = Json(json!({ "content": content })).into_response();
    if let Some(version) = version
        && let Ok(value) = HeaderValue::from_str(&format!("\"{version}\""))
    {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// The authorizing user behind a valid, unexpired bearer token.
fn authenticate(
    simulator: &LoketSimulator,
    headers: &HeaderMap,
) -> Result<AuthorizingUser, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .ok_or(ApiError::Unauthorized)?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(ApiError::Unauthorized)?;
    simulator
        .tokens()
        .user_for_access_token(token.trim())
        .ok_or(ApiError::Unauthorized)
}

fn parse_id(raw: &str, what: &'static str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(what))
}

fn visible(user: &AuthorizingUser, employer: &Employer) -> Result<(), ApiError> {
    if user.employer_access.allows(employer.id) {
        Ok(())
    } else {
        Err(ApiError::Forbidden("employer"))
    }
}

fn visible_employer<'w>(
    world: &'w World,
    user: &AuthorizingUser,
    raw_id: &str,
) -> Result<&'w Employer, ApiError> {
    let employer = world
        .employer(parse_id(raw_id, "employer")?)
        .ok_or(ApiError::NotFound("employer"))?;
    visible(user, employer)?;
    Ok(employer)
}

fn visible_employment<'w>(
    world: &'w World,
    user: &AuthorizingUser,
    raw_id: &str,
) -> Result<(&'w Employer, &'w Employment), ApiError> {
    let (employer, employment) = world
        .employment(parse_id(raw_id, "employment")?)
        .ok_or(ApiError::NotFound("employment"))?;
    visible(user, employer)?;
    Ok((employer, employment))
}

/// The employments an employer's lists show to `user`: none while the empty-list fault is on,
/// and without those ended before today when the user's filter hides former employees.
fn listed_employments<'w>(
    world: &World,
    user: &AuthorizingUser,
    employer: &'w Employer,
) -> Vec<&'w Employment> {
    if employer.serves_empty_employee_list {
        return Vec::new();
    }
    let today = world.today();
    employer
        .employments
        .iter()
        .filter(|employment| {
            !user.hides_former_employments || employment.end_date.is_none_or(|end| end >= today)
        })
        .collect()
}

/// The employments running on the simulated today, for the `actual...` lists.
fn actual_employments<'w>(
    world: &World,
    user: &AuthorizingUser,
    employer: &'w Employer,
) -> Vec<&'w Employment> {
    let today = world.today();
    listed_employments(world, user, employer)
        .into_iter()
        .filter(|employment| employment.is_active_on(today))
        .collect()
}

pub(super) async fn employers(
    State(simulator): State<LoketSimulator>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    let user = authenticate(&simulator, &headers)?;
    let paging = paging(&query, simulator.config())?;
    reject_filter_and_order(&query)?;
    Ok(simulator.with_world(|world| {
        let employers: Vec<&Employer> = world
            .employers()
            .iter()
            .filter(|employer| user.employer_access.allows(employer.id))
            .collect();
        collection(&employers, paging, |employer| render::employer(employer))
    }))
}

pub(super) async fn employer(
    State(simulator): State<LoketSimulator>,
    headers: HeaderMap,
    Path(employer_id): Path<String>,
) -> ApiResult {
    let user = authenticate(&simulator, &headers)?;
    simulator.with_world(|world| {
        let employer = visible_employer(world, &user, &employer_id)?;
        Ok(single(
            render::employer(employer),
            Some(employer.last_modified_version),
        ))
    })
}

pub(super) async fn employees(
    State(simulator): State<LoketSimulator>,
    headers: HeaderMap,
    Path(employer_id): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    let user = authenticate(&simulator, &headers)?;
    let paging = paging(&query, simulator.config())?;
    reject_filter_and_order(&query)?;
    simulator.with_world(|world| {
        let employer = visible_employer(world, &user, &employer_id)?;
        let employees = if employer.serves_empty_employee_list {
            &[]
        } else {
            employer.employees.as_slice()
        };
        Ok(collection(employees, paging, render::employee))
    })
}

pub(super) async fn employee(
    State(simulator): State<LoketSimulator>,
    headers: HeaderMap,
    Path(employee_id): Path<String>,
) -> ApiResult {
    let user = authenticate(&simulator, &headers)?;
    simulator.with_world(|world| {
        let (employer, employee) = world
            .employee(parse_id(&employee_id, "employee")?)
            .ok_or(ApiError::NotFound("employee"))?;
        visible(&user, employer)?;
        Ok(single(
            render::employee(employee),
            Some(employee.last_modified_version),
        ))
    })
}

pub(super) async fn citizen_service_number(
    State(simulator): State<LoketSimulator>,
    headers: HeaderMap,
    Path(employee_id): Path<String>,
) -> ApiResult {
    let user = authenticate(&simulator, &headers)?;
    simulator.with_world(|world| {
        let (employer, employee) = world
            .employee(parse_id(&employee_id, "employee")?)
            .ok_or(ApiError::NotFound("employee"))?;
        visible(&user, employer)?;
        if !user.may_read_citizen_service_numbers {
            return Err(ApiError::Forbidden("citizen service number"));
        }
        Ok(single(render::citizen_service_number(employee), None))
    })
}

pub(super) async fn employments_of_employer(
    State(simulator): State<LoketSimulator>,
    headers: HeaderMap,
    Path(employer_id): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    let user = authenticate(&simulator, &headers)?;
    let paging = paging(&query, simulator.config())?;
    reject_filter_and_order(&query)?;
    simulator.with_world(|world| {
        let employer = visible_employer(world, &user, &employer_id)?;
        Ok(collection(
            &listed_employments(world, &user, employer),
            paging,
            |employment| render::employment(employer, employment),
        ))
    })
}

pub(super) async fn employments_of_employee(
    State(simulator): State<LoketSimulator>,
    headers: HeaderMap,
    Path(employee_id): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    let user = authenticate(&simulator, &headers)?;
    let paging = paging(&query, simulator.config())?;
    reject_filter_and_order(&query)?;
    simulator.with_world(|world| {
        let id = parse_id(&employee_id, "employee")?;
        let Some(EntityLocation::Employee {
            employee: employee_index,
            ..
        }) = world.locate(id)
        else {
            return Err(ApiError::NotFound("employee"));
        };
        let (employer, _) = world.employee(id).ok_or(ApiError::NotFound("employee"))?;
        visible(&user, employer)?;
        let employments: Vec<&Employment> = employer
            .employments
            .iter()
            .filter(|employment| employment.employee_index == employee_index)
            .collect();
        Ok(collection(&employments, paging, |employment| {
            render::employment(employer, employment)
        }))
    })
}

pub(super) async fn employment(
    State(simulator): State<LoketSimulator>,
    headers: HeaderMap,
    Path(employment_id): Path<String>,
) -> ApiResult {
    let user = authenticate(&simulator, &headers)?;
    simulator.with_world(|world| {
        let (employer, employment) = visible_employment(world, &user, &employment_id)?;
        Ok(single(
            render::employment(employer, employment),
            Some(employment.last_modified_version),
        ))
    })
}

/// History first, current period last: the periods in the order they started.
pub(super) async fn organizational_entities(
    State(simulator): State<LoketSimulator>,
    headers: HeaderMap,
    Path(employment_id): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    let user = authenticate(&simulator, &headers)?;
    let paging = paging(&query, simulator.config())?;
    reject_filter_and_order(&query)?;
    simulator.with_world(|world| {
        let (employer, employment) = visible_employment(world, &user, &employment_id)?;
        let periods: Vec<_> = employment
            .organization_history
            .iter()
            .chain(std::iter::once(&employment.organization))
            .collect();
        Ok(collection(&periods, paging, |period| {
            render::organizational_entity(employer, period)
        }))
    })
}

pub(super) async fn working_hours(
    State(simulator): State<LoketSimulator>,
    headers: HeaderMap,
    Path(employment_id): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    let user = authenticate(&simulator, &headers)?;
    let paging = paging(&query, simulator.config())?;
    reject_filter_and_order(&query)?;
    simulator.with_world(|world| {
        let (_, employment) = visible_employment(world, &user, &employment_id)?;
        let periods: Vec<_> = employment
            .working_hours_history
            .iter()
            .chain(std::iter::once(&employment.working_hours))
            .collect();
        Ok(collection(&periods, paging, |period| {
            render::working_hours(period)
        }))
    })
}

pub(super) async fn wages(
    State(simulator): State<LoketSimulator>,
    headers: HeaderMap,
    Path(employment_id): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    let user = authenticate(&simulator, &headers)?;
    let paging = paging(&query, simulator.config())?;
    reject_filter_and_order(&query)?;
    simulator.with_world(|world| {
        let (employer, employment) = visible_employment(world, &user, &employment_id)?;
        let periods: Vec<_> = employment
            .wage_history
            .iter()
            .chain(std::iter::once(&employment.wage))
            .collect();
        Ok(collection(&periods, paging, |period| {
            render::wage(employer, period)
        }))
    })
}

/// The organizational entity in force today for every running employment of the employer (a
/// slice entered per next month is not "actual" yet; it shows in the employment's own list).
pub(super) async fn actual_organizational_entities(
    State(simulator): State<LoketSimulator>,
    headers: HeaderMap,
    Path(employer_id): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    let user = authenticate(&simulator, &headers)?;
    let paging = paging(&query, simulator.config())?;
    reject_filter_and_order(&query)?;
    simulator.with_world(|world| {
        let employer = visible_employer(world, &user, &employer_id)?;
        let employments = actual_employments(world, &user, employer);
        Ok(collection(&employments, paging, |employment| {
            let entity =
                render::organizational_entity(employer, employment.organization_on(world.today()));
            render::with_employment_reference(entity, employer, employment)
        }))
    })
}

/// The working hours in force today for every running employment of the employer.
pub(super) async fn actual_working_hours(
    State(simulator): State<LoketSimulator>,
    headers: HeaderMap,
    Path(employer_id): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    let user = authenticate(&simulator, &headers)?;
    let paging = paging(&query, simulator.config())?;
    reject_filter_and_order(&query)?;
    simulator.with_world(|world| {
        let employer = visible_employer(world, &user, &employer_id)?;
        let employments = actual_employments(world, &user, employer);
        Ok(collection(&employments, paging, |employment| {
            let hours = render::working_hours(employment.working_hours_on(world.today()));
            render::with_employment_reference(hours, employer, employment)
        }))
    })
}

pub(super) async fn departments(
    State(simulator): State<LoketSimulator>,
    headers: HeaderMap,
    Path(employer_id): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    let user = authenticate(&simulator, &headers)?;
    let paging = paging(&query, simulator.config())?;
    reject_filter_and_order(&query)?;
    simulator.with_world(|world| {
        let employer = visible_employer(world, &user, &employer_id)?;
        Ok(collection(&employer.departments, paging, |department| {
            render::department(employer, department)
        }))
    })
}

pub(super) async fn department(
    State(simulator): State<LoketSimulator>,
    headers: HeaderMap,
    Path(department_id): Path<String>,
) -> ApiResult {
    let user = authenticate(&simulator, &headers)?;
    simulator.with_world(|world| {
        let (employer, department) = world
            .department(parse_id(&department_id, "department")?)
            .ok_or(ApiError::NotFound("department"))?;
        visible(&user, employer)?;
        Ok(single(
            render::department(employer, department),
            Some(department.last_modified_version),
        ))
    })
}

pub(super) async fn users(
    State(simulator): State<LoketSimulator>,
    headers: HeaderMap,
    Path(employer_id): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    let user = authenticate(&simulator, &headers)?;
    let paging = paging(&query, simulator.config())?;
    reject_filter_and_order(&query)?;
    simulator.with_world(|world| {
        let employer = visible_employer(world, &user, &employer_id)?;
        let users = render::employer_users(employer);
        Ok(collection(&users, paging, |employer_user| {
            render::user(employer, employer_user)
        }))
    })
}

pub(super) async fn users_departments(
    State(simulator): State<LoketSimulator>,
    headers: HeaderMap,
    Path(employer_id): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    let user = authenticate(&simulator, &headers)?;
    let paging = paging(&query, simulator.config())?;
    reject_filter_and_order(&query)?;
    simulator.with_world(|world| {
        let employer = visible_employer(world, &user, &employer_id)?;
        let users = render::employer_users(employer);
        Ok(collection(&users, paging, |employer_user| {
            render::user_departments(employer, employer_user)
        }))
    })
}

/// `GET /providers/employers/lastmodifiedversionnumbers`: the visible employers' versions.
pub(super) async fn employer_versions(
    State(simulator): State<LoketSimulator>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    let user = authenticate(&simulator, &headers)?;
    let paging = paging(&query, simulator.config())?;
    let selection = VersionSelection::from_query(&query)?;
    Ok(simulator.with_world(|world| {
        let versions = world
            .employers()
            .iter()
            .filter(|employer| user.employer_access.allows(employer.id))
            .map(|employer| (employer.id, employer.last_modified_version));
        let items = selection.apply(versions);
        collection(&items, paging, |(id, version)| {
            render::version_item(*id, *version)
        })
    }))
}

/// `GET /providers/employers/{employerId}/employees/employments/lastmodifiedversionnumbers`.
pub(super) async fn employment_versions(
    State(simulator): State<LoketSimulator>,
    headers: HeaderMap,
    Path(employer_id): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    let user = authenticate(&simulator, &headers)?;
    let paging = paging(&query, simulator.config())?;
    let selection = VersionSelection::from_query(&query)?;
    simulator.with_world(|world| {
        let employer = visible_employer(world, &user, &employer_id)?;
        let versions = listed_employments(world, &user, employer)
            .into_iter()
            .map(|employment| (employment.id, employment.last_modified_version));
        let items = selection.apply(versions);
        Ok(collection(&items, paging, |(id, version)| {
            render::version_item(*id, *version)
        }))
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    GreaterThan,
    GreaterOrEqual,
    LessThan,
    LessOrEqual,
    Equal,
    NotEqual,
}

/// A parsed `filter=lastModifiedVersionNumber gt N` and `orderBy=[-]lastModifiedVersionNumber`.
#[derive(Debug, Clone, Copy, Default)]
struct VersionSelection {
    filter: Option<(Comparison, u64)>,
    /// `Some(true)` for descending (`-` prefix), `Some(false)` ascending, `None` world order.
    descending: Option<bool>,
}

/// The field may be named either way (`sources.md` 1.7 shows both); both are accepted.
fn is_version_field(name: &str) -> bool {
    name.eq_ignore_ascii_case("lastModifiedVersionNumber") || name.eq_ignore_ascii_case("version")
}

impl VersionSelection {
    fn from_query(query: &ListQuery) -> Result<Self, ApiError> {
        let mut selection = VersionSelection::default();
        if let Some(filter) = query.filter.as_deref() {
            selection.filter = Some(parse_version_filter(filter)?);
        }
        if let Some(order) = query.order_by.as_deref() {
            let order = order.trim();
            let (descending, field) = match order.strip_prefix('-') {
                Some(field) => (true, field),
                None => (false, order.strip_prefix('+').unwrap_or(order)),
            };
            if !is_version_field(field.trim()) {
                return Err(ApiError::BadRequest(format!("Cannot order by '{order}'.")));
            }
            selection.descending = Some(descending);
        }
        Ok(selection)
    }

    fn apply(&self, versions: impl Iterator<Item = (Uuid, u64)>) -> Vec<(Uuid, u64)> {
        let mut items: Vec<(Uuid, u64)> = versions
            .filter(|(_, version)| {
                self.filter
                    .is_none_or(|(comparison, bound)| match comparison {
                        Comparison::GreaterThan => *version > bound,
                        Comparison::GreaterOrEqual => *version >= bound,
                        Comparison::LessThan => *version < bound,
                        Comparison::LessOrEqual => *version <= bound,
                        Comparison::Equal => *version == bound,
                        Comparison::NotEqual => *version != bound,
                    })
            })
            .collect();
        match self.descending {
            // Stable sorts keep world order among equal versions, so paging stays consistent.
            Some(true) => items.sort_by_key(|item| std::cmp::Reverse(item.1)),
            Some(false) => items.sort_by_key(|item| item.1),
            None => {}
        }
        items
    }
}

fn parse_version_filter(filter: &str) -> Result<(Comparison, u64), ApiError> {
    let invalid = || ApiError::BadRequest(format!("Invalid filter '{filter}'."));
    let parts: Vec<&str> = filter.split_whitespace().collect();
    let [field, operator, value] = parts.as_slice() else {
        return Err(invalid());
    };
    if !is_version_field(field) {
        return Err(invalid());
    }
    let comparison = match operator.to_ascii_lowercase().as_str() {
        "gt" => Comparison::GreaterThan,
        "ge" => Comparison::GreaterOrEqual,
        "lt" => Comparison::LessThan,
        "le" => Comparison::LessOrEqual,
        "eq" => Comparison::Equal,
        "ne" => Comparison::NotEqual,
        _ => return Err(invalid()),
    };
    // Longs above int.MaxValue may carry an `L` suffix (S4's FilterBuilder writes one).
    let number = value.strip_suffix(['L', 'l']).unwrap_or(value);
    let bound = number.parse::<u64>().map_err(|_| invalid())?;
    Ok((comparison, bound))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_filters_parse() {
        assert_eq!(
            parse_version_filter("lastModifiedVersionNumber gt 70429274").unwrap(),
            (Comparison::GreaterThan, 70_429_274)
        );
        assert_eq!(
            parse_version_filter("version ge 5L").unwrap(),
            (Comparison::GreaterOrEqual, 5)
        );
        assert!(parse_version_filter("companyName lk 'Tech'").is_err());
        assert!(parse_version_filter("lastModifiedVersionNumber gt").is_err());
        assert!(parse_version_filter("lastModifiedVersionNumber gt -1").is_err());
    }

    #[test]
    fn selection_filters_and_orders() {
        let query = ListQuery {
            filter: Some("lastModifiedVersionNumber gt 2".into()),
            order_by: Some("-lastModifiedVersionNumber".into()),
            ..ListQuery::default()
        };
        let selection = VersionSelection::from_query(&query).unwrap();
        let ids: Vec<Uuid> = (0..4).map(Uuid::from_u128).collect();
        let items = selection.apply(ids.iter().copied().zip([1, 5, 3, 2]));
        assert_eq!(items, vec![(ids[1], 5), (ids[2], 3)]);
    }
}
