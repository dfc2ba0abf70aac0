import pytest
from django.contrib.auth.models import Group, User


@pytest.fixture
def user_in_role(db):
    def make(role: str | None, *, username: str | None = None, is_staff: bool = True) -> User:
        user = User.objects.create_user(
            username or f"{role or 'nobody'}-user", password="correct horse battery", is_staff=is_staff
        )
        if role:
            user.groups.add(Group.objects.get(name=role))
        return User.objects.get(pk=user.pk)  # fresh: no cached permissions

    return make
