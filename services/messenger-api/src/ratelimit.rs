//! Login attempt limits per phone number and per client IP, and registrations per client IP
//! (governor, GCRA).

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

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
