//! Login attempt limits per phone number and per client IP, registrations per client IP, and
//! what one user may make others receive: messages sent, members added to groups (governor,
//! GCRA). Every replica counts on its own: behind N replicas a user gets up to N times the
//! allowance.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::json;
use uuid::Uuid;

use crate::config::UserLimitSettings;
use crate::error::ApiError;

/// The two login limiters.
#[derive(Clone)]
pub struct LoginLimits {
    per_phone: Arc<DefaultKeyedRateLimiter<String>>,
    per_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    register_per_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
}

impl LoginLimits {
    /// `per_phone` and `per_ip` login attempts, `register_per_ip` registrations per minute
    /// (bursts of the same size).
    pub fn new(per_phone: u32, per_ip: u32, register_per_ip: u32) -> Self {
        let quota =
            |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN));
        Self {
            per_phone: Arc::new(RateLimiter::keyed(quota(per_phone))),
            per_ip: Arc::new(RateLimiter::keyed(quota(per_ip))),
            register_per_ip: Arc::new(RateLimiter::keyed(quota(register_per_ip))),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one attempt; Err(seconds to wait) when either limit is exhausted.
    pub fn check(&self, phone: &str, ip: IpAddr) -> Result<(), u64> {
        let now = self.clock.now();
        let wait = |r: Result<(), governor::NotUntil<_>>| {
            r.map_err(|n| n.wait_time_from(now).as_secs().max(1))
        };
        wait(self.per_ip.check_key(&ip))?;
        wait(self.per_phone.check_key(&phone.to_owned()))?;
        Ok(())
    }

    /// Counts one registration attempt; Err(seconds to wait) when the IP's limit is exhausted.
    pub fn check_register(&self, ip: IpAddr) -> Result<(), u64> {
        self.register_per_ip
            .check_key(&ip)
            .map_err(|n| n.wait_time_from(self.clock.now()).as_secs().max(1))
    }

    /// Forgets keys whose limits have recovered (call now and then to bound memory).
    pub fn retain_recent(&self) {
        self.per_phone.retain_recent();
        self.per_ip.retain_recent();
        self.register_per_ip.retain_recent();
    }
}

/// Per-user limits: messages sent (text and voice, REST and hub together) and members added
/// to groups.
#[derive(Clone)]
pub struct UserLimits {
    sends: Arc<DefaultKeyedRateLimiter<Uuid>>,
    members: Arc<DefaultKeyedRateLimiter<Uuid>>,
    settings: UserLimitSettings,
    clock: DefaultClock,
}

/// Whole seconds to wait, rounded up (a client that waits what `Retry-After` says must get
/// through), at least 1.
fn retry_after(wait: std::time::Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// A positive `n` (the settings are checked positive; 1 if not).
fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl UserLimits {
    /// Sends: `send_burst` in a row, refilled at `send_rate_per_minute`. Members:
    /// `group_members_per_hour`, refilled evenly over the hour.
    pub fn new(settings: UserLimitSettings) -> Self {
        let sends = Quota::per_minute(nonzero(settings.send_rate_per_minute))
            .allow_burst(nonzero(settings.send_burst));
        let members = Quota::per_hour(nonzero(settings.group_members_per_hour));
        Self {
            sends: Arc::new(RateLimiter::keyed(sends)),
            members: Arc::new(RateLimiter::keyed(members)),
            settings,
            clock: DefaultClock::default(),
        }
    }

    /// Counts one message of `user`.
    ///
    /// Errors: [`ApiError::TooManyRequests`] naming the limit, when it is exhausted.
    pub fn check_send(&self, user: Uuid) -> Result<(), ApiError> {
        self.sends.check_key(&user).map_err(|n| {
            metrics::counter!("rate_limited_total", "limit" => "send").increment(1);
            ApiError::TooManyRequests {
                reason: format!(
                    "message limit reached: at most {} in a row, then {} per minute",
                    self.settings.send_burst, self.settings.send_rate_per_minute
                ),
                retry_after_secs: retry_after(n.wait_time_from(self.clock.now())),
            }
        })
    }

    /// Checks that one request may add `count` members to a group (before anything is looked
    /// up for them).
    ///
    /// Errors: 400 naming `memberIds` above `MESSENGER_GROUP_MEMBERS_PER_REQUEST`.
    pub fn check_members_per_request(&self, count: usize) -> Result<(), ApiError> {
        let per_request = self.settings.group_members_per_request;
        if count > per_request as usize {
            return Err(ApiError::invalid(
                format!("at most {per_request} members may be added in one request"),
                json!({ "memberIds": format!("{count} given, at most {per_request}") }),
            ));
        }
        Ok(())
    }

    /// Counts `count` members added to a group against `user`'s hourly allowance, all or
    /// nothing. Call it once the request is otherwise valid: a refused request costs nothing.
    ///
    /// Errors: [`ApiError::TooManyRequests`] naming the hourly limit when `user` has not
    /// enough of it left.
    pub fn take_members_added(&self, user: Uuid, count: usize) -> Result<(), ApiError> {
        let per_hour = self.settings.group_members_per_hour;
        let Some(n) = NonZeroU32::new(count as u32) else {
            return Ok(());
        };
        let limited = |retry_after_secs| {
            metrics::counter!("rate_limited_total", "limit" => "group_members").increment(1);
            ApiError::TooManyRequests {
                reason: format!(
                    "member limit reached: at most {per_hour} added to groups per hour"
                ),
                retry_after_secs,
            }
        };
        match self.members.check_key_n(&user, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(limited(retry_after(
                not_until.wait_time_from(self.clock.now()),
            ))),
            // More than the whole hourly allowance: the settings forbid it (per request ≤ per
            // hour), so this is only reached if they change.
            Err(_) => Err(limited(3600)),
        }
    }

    /// Forgets users whose limits have recovered (call now and then to bound memory).
    pub fn retain_recent(&self) {
        self.sends.retain_recent();
        self.members.retain_recent();
    }
}

/// The client's IP: the peer's, or nginx's `X-Real-IP` when the peer is a proxy on a local
/// or private network (never trusted from the internet directly).
pub fn client_ip(peer: Option<SocketAddr>, headers: &HeaderMap) -> IpAddr {
    let peer_ip = peer.map(|p| p.ip()).unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let local = match peer_ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unique_local(),
    };
    if local
        && let Some(real) = headers
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse().ok())
    {
        return real;
    }
    peer_ip
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_apply_per_phone_and_per_ip() {
        let l = LoginLimits::new(2, 3, 1);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(l.check("+1", a).is_ok());
        assert!(l.check("+1", b).is_ok());
        assert!(
            l.check("+1", a).unwrap_err() >= 1,
            "third attempt for one phone"
        );
        assert!(l.check("+2", a).is_ok());
        assert!(l.check("+3", a).is_err(), "fourth attempt from one IP");
    }

    fn user_limits(per_request: u32, per_hour: u32, rate: u32, burst: u32) -> UserLimits {
        UserLimits::new(UserLimitSettings {
            group_members_per_request: per_request,
            group_members_per_hour: per_hour,
            send_rate_per_minute: rate,
            send_burst: burst,
        })
    }

    #[test]
    fn sends_are_limited_per_user_with_a_burst() {
        let l = user_limits(10, 10, 60, 3);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        for _ in 0..3 {
            l.check_send(a).expect("within the burst");
        }
        let e = l.check_send(a).unwrap_err();
        let ApiError::TooManyRequests {
            reason,
            retry_after_secs,
        } = &e
        else {
            panic!("429 expected, got {e:?}");
        };
        assert_eq!(
            reason,
            "message limit reached: at most 3 in a row, then 60 per minute"
        );
        assert_eq!(*retry_after_secs, 1, "60 a minute refills one a second");
        l.check_send(b)
            .expect("another user has their own allowance");
    }

    #[test]
    fn members_added_are_limited_per_request_and_per_hour() {
        let l = user_limits(4, 6, 60, 20);
        let a = Uuid::new_v4();
        let e = l.check_members_per_request(5).unwrap_err();
        assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
        assert_eq!(
            e.to_string(),
            "at most 4 members may be added in one request"
        );
        l.check_members_per_request(4).expect("at the limit");
        l.take_members_added(a, 0)
            .expect("no members, nothing counted");
        l.take_members_added(a, 4).expect("first group");
        let e = l.take_members_added(a, 3).unwrap_err();
        let ApiError::TooManyRequests {
            reason,
            retry_after_secs,
        } = &e
        else {
            panic!("429 expected, got {e:?}");
        };
        assert!(
            reason.contains("at most 6 added to groups per hour"),
            "{reason}"
        );
        // one member refills every 10 minutes; 3 need one more than the 2 left
        assert!((590..=600).contains(retry_after_secs), "{retry_after_secs}");
        l.take_members_added(a, 2).expect("what is left still fits");
        l.take_members_added(Uuid::new_v4(), 4)
            .expect("another user has their own allowance");
    }

    #[test]
    fn x_real_ip_is_trusted_only_from_local_peers() {
        let mut h = HeaderMap::new();
        h.insert("x-real-ip", "203.0.113.9".parse().unwrap());
        let local: SocketAddr = "172.18.0.5:4000".parse().unwrap();
        let public: SocketAddr = "198.51.100.1:4000".parse().unwrap();
        assert_eq!(
            client_ip(Some(local), &h),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(Some(public), &h), public.ip());
    }
}
